"""Every published AWS figure the capacity model uses, as data, each with its source.

Defaults are the quotas of a new account in us-east-1; most can be raised (``raisable``).
Prices are on-demand, us-east-1 (bench/costmeter.py bills measured usage with them too).
"""

from __future__ import annotations

from dataclasses import dataclass

DDB_PARTITIONS = (
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/bp-partition-key-design.html"
)
DDB_ON_DEMAND = (
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/on-demand-capacity-mode.html"
)
DDB_ON_DEMAND_THROTTLING = "https://repost.aws/knowledge-center/on-demand-table-throttling-dynamodb"
DDB_QUOTAS = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/ServiceQuotas.html"
DDB_ADAPTIVE = (
    "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/burst-adaptive-capacity.html"
)
DDB_SPLIT_FOR_HEAT = "https://aws.amazon.com/blogs/database/part-3-scaling-dynamodb-how-partitions-hot-keys-and-split-for-heat-impact-performance/"
DDB_SCAN = "https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/Scan.html"
APIGW_QUOTAS = "https://docs.aws.amazon.com/apigateway/latest/developerguide/limits.html"
LAMBDA_QUOTAS = "https://docs.aws.amazon.com/lambda/latest/dg/gettingstarted-limits.html"
LAMBDA_SCALING = "https://docs.aws.amazon.com/lambda/latest/dg/scaling-behavior.html"
EC2_THROTTLING = "https://docs.aws.amazon.com/ec2/latest/devguide/ec2-api-throttling.html"
ASG_THROTTLING = "https://repost.aws/knowledge-center/autoscaling-api-calls-throttled"
DDB_PRICING = "https://aws.amazon.com/dynamodb/pricing/on-demand/"
APIGW_PRICING = "https://aws.amazon.com/api-gateway/pricing/"
LAMBDA_PRICING = "https://aws.amazon.com/lambda/pricing/"


@dataclass(frozen=True)
class Limit:
    """One published figure: ``value`` in ``unit``, applying per ``scope``."""

    key: str
    name: str
    value: float
    unit: str
    scope: str
    source: str
    raisable: bool = False
    note: str = ""


LIMITS: dict[str, Limit] = {
    limit.key: limit
    for limit in (
        Limit(
            "partition_rcu", "DynamoDB partition reads", 3000, "RCU/s", "partition",
            DDB_PARTITIONS,
            note="also one item's ceiling: adaptive capacity may isolate a hot item on its "
            "own partition, but never above this",
        ),
        Limit(
            "partition_wcu", "DynamoDB partition writes", 1000, "WCU/s", "partition",
            DDB_PARTITIONS, note="also one item's ceiling (an item is never split)",
        ),
        Limit(
            "table_rru", "DynamoDB on-demand table reads", 40000, "RRU/s", "table",
            DDB_QUOTAS, raisable=True, note="per table, default quota",
        ),
        Limit(
            "table_wru", "DynamoDB on-demand table writes", 40000, "WRU/s", "table",
            DDB_QUOTAS, raisable=True, note="per table, default quota",
        ),
        Limit(
            "new_table_rru", "DynamoDB new on-demand table, instant reads", 12000, "RRU/s",
            "table", DDB_ON_DEMAND_THROTTLING,
            note="or 4,000 WRU/s, or a linear mix; beyond: ramp (see peak_doubling)",
        ),
        Limit(
            "new_table_wru", "DynamoDB new on-demand table, instant writes", 4000, "WRU/s",
            "table", DDB_ON_DEMAND_THROTTLING,
        ),
        Limit(
            "peak_doubling", "DynamoDB on-demand growth: double the previous peak", 30 * 60,
            "s", "table", DDB_ON_DEMAND_THROTTLING,
            note="traffic above twice the previous peak within 30 min may throttle",
        ),
        Limit(
            "item_bytes", "DynamoDB item size", 400 * 1024, "bytes", "item", DDB_QUOTAS,
        ),
        Limit(
            "scan_page_bytes", "DynamoDB Scan/Query page", 1024 * 1024, "bytes", "request",
            DDB_SCAN, note="one request reads at most 1 MB: a larger table is several pages",
        ),
        Limit(
            "apigw_rps", "API Gateway account throttle", 10000, "requests/s", "account",
            APIGW_QUOTAS, raisable=True, note="HTTP, REST and WebSocket APIs together",
        ),
        Limit(
            "apigw_burst", "API Gateway burst bucket", 5000, "requests", "account",
            APIGW_QUOTAS, note="token bucket; set by AWS, not raisable",
        ),
        Limit(
            "lambda_concurrency", "Lambda concurrent executions", 1000, "executions",
            "account", LAMBDA_QUOTAS, raisable=True,
        ),
        Limit(
            "lambda_scaling", "Lambda scaling rate", 1000, "environments per 10 s",
            "function", LAMBDA_SCALING,
        ),
        Limit(
            "lambda_max_timeout", "Lambda maximum timeout", 900, "s", "invocation",
            LAMBDA_QUOTAS,
        ),
        Limit(
            "dfs_timeout", "DFS function timeout (infra/functions.py)", 50, "s",
            "invocation", LAMBDA_QUOTAS,
            note="ours: done before the next once-a-minute tick (the quota allows 900 s)",
        ),
        Limit(
            "ec2_run_bucket", "EC2 RunInstances resource bucket", 1000, "instances",
            "account", EC2_THROTTLING,
        ),
        Limit(
            "ec2_run_refill", "EC2 RunInstances resource refill", 2, "instances/s",
            "account", EC2_THROTTLING,
        ),
        Limit(
            "ec2_describe_refill", "EC2 non-mutating request refill", 20, "requests/s",
            "account", EC2_THROTTLING, note="bucket of 100 (e.g. DescribeHosts)",
        ),
        Limit(
            "asg_api", "Auto Scaling API rate", float("nan"), "requests/s", "account",
            ASG_THROTTLING,
            note="no figure published: one shared bucket per account and Region; DFS "
            "calls it a few times per tick",
        ),
    )
}  # fmt: skip

# A request's latency the DFS tick's time is modelled with: DynamoDB states "single-digit
# millisecond" latency (DDB_ON_DEMAND); 10 ms per request (a 1 MB Scan page counts as one
# request) is the upper end of that, not a measurement.
DDB_REQUEST_SECONDS = 0.010

# On-demand prices, us-east-1 (USD).
PRICE_WRITE_UNIT = 0.625e-6  # DDB_PRICING
PRICE_READ_UNIT = 0.125e-6  # DDB_PRICING
PRICE_LAMBDA_REQUEST = 0.20e-6  # LAMBDA_PRICING
PRICE_LAMBDA_GB_SECOND = 0.0000166667  # LAMBDA_PRICING, x86
PRICE_API_GATEWAY_REQUEST = 1.00e-6  # APIGW_PRICING: HTTP API, first 300 M a month
LAMBDA_MEMORY_GB = 0.5  # the API function's size (infra/functions.py: 512 MB)


def limit(key: str) -> Limit:
    return LIMITS[key]
