"""The capacity model (``impetus capacity``): the request mix measured from the real code
paths (bench/capacity_mix.py) scaled to N nodes, S streams and R jobs/s against AWS's
published limits (:mod:`impetus.capacity.limits`). A development tool: the Lambda bundle
leaves this package out."""
