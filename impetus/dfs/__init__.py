"""DFS: the fleet follows the work.

- :mod:`impetus.dfs.model`, :mod:`impetus.dfs.policy`: the pure scaling policy.
- :mod:`impetus.dfs.estimate`: job duration from stream counters (Little's law).
- :mod:`impetus.dfs.collect`, :mod:`impetus.dfs.actuate`, :mod:`impetus.dfs.metrics`,
  :mod:`impetus.dfs.decisions`, :mod:`impetus.dfs.tick`: what the DFS Lambda runs.
- :mod:`impetus.dfs.traces`, :mod:`impetus.dfs.simfleet`, :mod:`impetus.dfs.simpolicies`,
  :mod:`impetus.dfs.simulate`: the simulator.
- :mod:`impetus.dfs.cli`: ``impetus dfs log|simulate``.
"""
