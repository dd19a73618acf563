"""The nodes: a new VPC, and per node class a launch template and an Auto Scaling group.

Network: public subnets in two AZs, no NAT gateway, and *gateway* endpoints for DynamoDB
and S3. Nodes need outbound internet anyway (dnf, CloudWatch Logs, Secrets Manager, Auto
Scaling; not PyPI: the node package holds every wheel), and a NAT gateway costs
about $32 a month per AZ before traffic; gateway endpoints are free and keep the heavy
traffic, queue claims and payloads, on AWS's network. The security group admits nothing
inbound, so a public address exposes no service.
"""

from __future__ import annotations

from collections.abc import Mapping

from aws_cdk import Duration, RemovalPolicy
from aws_cdk import aws_autoscaling as autoscaling
from aws_cdk import aws_ec2 as ec2
from aws_cdk import aws_iam as iam
from aws_cdk import aws_logs as logs
from aws_cdk import aws_s3_assets as s3_assets
from constructs import Construct

from impetus.core.config import ENV_IMDS_URL, ENV_LOG_GROUP, ENV_REGION
from impetus.core.grants import Component, Res
from infra import permissions
from infra.data import DataPlane
from infra.node_classes import NodeClass
from node_agent.bootstrap.render import BootConfig, render

OWN_GROUP = frozenset({Res.OWN_NODE_GROUP})
HOOK_MARGIN = 60  # seconds the lifecycle hook waits beyond the drain grace
# The instance metadata service: Spot nodes' agents watch it for interruption notices
# (node_agent/interruption.py); the jobs' user is blocked from it (user_data.sh).
IMDS_URL = "http://169.254.169.254"


class Network(Construct):
    def __init__(self, scope: Construct, construct_id: str) -> None:
        super().__init__(scope, construct_id)
        self.vpc = ec2.Vpc(
            self,
            "Vpc",
            max_azs=2,
            nat_gateways=0,
            restrict_default_security_group=True,
            subnet_configuration=[
                ec2.SubnetConfiguration(
                    name="nodes", subnet_type=ec2.SubnetType.PUBLIC, cidr_mask=20
                )
            ],
            gateway_endpoints={
                "DynamoDb": ec2.GatewayVpcEndpointOptions(
                    service=ec2.GatewayVpcEndpointAwsService.DYNAMODB
                ),
                "S3": ec2.GatewayVpcEndpointOptions(service=ec2.GatewayVpcEndpointAwsService.S3),
            },
        )
        self.security_group = ec2.SecurityGroup(
            self,
            "NodeSecurityGroup",
            vpc=self.vpc,
            description="Impetus nodes: no inbound, outbound to AWS APIs and package mirrors",
            allow_all_outbound=True,
        )


class NodeGroup(Construct):
    """One node class: its role, launch template (user-data), group and lifecycle hook.

    The group has no fixed name (CloudFormation names it, so an update that replaces it
    succeeds): ``group_name`` is a reference, resolved at deploy time.
    """

    def __init__(
        self,
        scope: Construct,
        construct_id: str,
        *,
        node_class: NodeClass,
        network: Network,
        data: DataPlane,
        package: s3_assets.Asset,
        log_group: logs.ILogGroup,
        python_version: str,
        environment: Mapping[str, str],
        region: str,
    ) -> None:
        super().__init__(scope, construct_id)
        self.node_class = node_class
        self.role = iam.Role(
            self,
            "Role",
            assumed_by=iam.ServicePrincipal("ec2.amazonaws.com"),
            description=f"Impetus nodes of class {node_class.name}",
        )
        arns = {
            **permissions.data_arns(data),
            Res.NODE_PACKAGE: [package.bucket.arn_for_objects(package.s3_object_key)],
            Res.OWN_LOG_GROUP: [log_group.log_group_arn],
        }
        # What a booting node needs, in the role's default policy (the launch template
        # waits for it); the grants on its own group follow the group (_grant_group).
        permissions.grant_all(self.role, Component.NODE, arns, skip=OWN_GROUP)
        self.user_data_script = render(
            BootConfig(
                python_version=python_version,
                package_source=package.s3_object_url,
                region=region,
                # Jobs' output goes to the node log group too (node_agent/cloudlogs.py).
                environment={
                    **environment,
                    ENV_REGION: region,
                    ENV_LOG_GROUP: log_group.log_group_name,
                    **({ENV_IMDS_URL: IMDS_URL} if node_class.spot else {}),
                },
                mpps=node_class.mpps,
                properties=node_class.properties,
                grace=node_class.grace,
                log_group=log_group.log_group_name,
            )
        )
        self.launch_template = ec2.LaunchTemplate(
            self,
            "LaunchTemplate",
            machine_image=machine_image(node_class),
            instance_type=ec2.InstanceType(node_class.instance_types[0]),
            role=self.role,
            security_group=network.security_group,
            associate_public_ip_address=True,
            require_imdsv2=True,
            # A bootstrap that gives up shuts the node down: it must go, not sit stopped
            # with its volume billed until Auto Scaling notices.
            instance_initiated_shutdown_behavior=ec2.InstanceInitiatedShutdownBehavior.TERMINATE,
            user_data=ec2.UserData.custom(self.user_data_script),
            block_devices=[
                ec2.BlockDevice(
                    device_name="/dev/xvda",
                    volume=ec2.BlockDeviceVolume.ebs(
                        node_class.root_volume_gb,
                        encrypted=True,
                        volume_type=ec2.EbsDeviceVolumeType.GP3,
                    ),
                )
            ],
        )
        self.group = autoscaling.AutoScalingGroup(
            self,
            "Group",
            vpc=network.vpc,
            vpc_subnets=ec2.SubnetSelection(subnet_type=ec2.SubnetType.PUBLIC),
            min_capacity=node_class.min,
            max_capacity=node_class.max,
            # No desired capacity: DFS owns it, and a deploy must not reset it.
            **self._instances(),
            group_metrics=[autoscaling.GroupMetrics.all()],
            capacity_rebalance=node_class.spot or None,
        )
        self.hook = self.group.add_lifecycle_hook(
            "Drain",
            lifecycle_transition=autoscaling.LifecycleTransition.INSTANCE_TERMINATING,
            heartbeat_timeout=Duration.seconds(node_class.grace + HOOK_MARGIN),
            default_result=autoscaling.DefaultResult.CONTINUE,
        )
        self.group_name = self.group.auto_scaling_group_name
        self._grant_group()

    def _instances(self) -> dict[str, object]:
        """A plain launch template for one on-demand type; a mixed policy otherwise."""
        node_class = self.node_class
        split = node_class.distribution()
        if split is None and len(node_class.instance_types) == 1:
            return {"launch_template": self.launch_template}
        return {
            "mixed_instances_policy": autoscaling.MixedInstancesPolicy(
                launch_template=self.launch_template,
                launch_template_overrides=[
                    autoscaling.LaunchTemplateOverrides(instance_type=ec2.InstanceType(t))
                    for t in node_class.instance_types
                ],
                instances_distribution=autoscaling.InstancesDistribution(
                    **(split or {"on_demand_percentage_above_base_capacity": 100}),
                    spot_allocation_strategy=autoscaling.SpotAllocationStrategy.PRICE_CAPACITY_OPTIMIZED,
                ),
            )
        }

    def _grant_group(self) -> None:
        """The grants on the node's own group, scoped by its generated name: a policy of
        their own, after the group (in the default policy, which the launch template
        waits for, they would make a cycle: template -> policy -> group -> template).
        Nodes use them only once running (scale-in protection, the termination hook)."""
        arns = {Res.OWN_NODE_GROUP: [permissions.group_arn(self, self.group_name)]}
        iam.Policy(
            self,
            "GroupPolicy",
            roles=[self.role],
            statements=permissions.statements_on(Component.NODE, OWN_GROUP, arns),
        )


def machine_image(node_class: NodeClass) -> ec2.IMachineImage:
    """The class's AMI: its SSM parameter (resolved at deploy time), else the latest AL2023."""
    if node_class.image_parameter:
        return ec2.MachineImage.from_ssm_parameter(node_class.image_parameter)
    cpu = ec2.AmazonLinuxCpuType.ARM_64 if node_class.arm else ec2.AmazonLinuxCpuType.X86_64
    return ec2.MachineImage.latest_amazon_linux2023(cpu_type=cpu)


def node_log_group(scope: Construct) -> logs.LogGroup:
    return logs.LogGroup(
        scope,
        "NodeLogs",
        retention=logs.RetentionDays.ONE_MONTH,
        removal_policy=RemovalPolicy.DESTROY,
    )
