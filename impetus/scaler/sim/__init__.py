"""The DFS simulator: traces, a simulated fleet, baseline policies and the bound search
(``impetus dfs simulate`` and ``impetus dfs bound``). Not deployed: the Lambda bundle
leaves this package out."""
