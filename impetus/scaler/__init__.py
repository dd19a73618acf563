"""DFS: the fleet follows the work.

- :mod:`impetus.scaler.model`, :mod:`impetus.scaler.policy` (with :mod:`impetus.scaler.params`
  and the idle rule, :mod:`impetus.scaler.idle`): the pure scaling policy.
- :mod:`impetus.scaler.estimate`: job duration from stream counters (Little's law).
- :mod:`impetus.scaler.collect`, :mod:`impetus.scaler.actuate`, :mod:`impetus.scaler.metrics`,
  :mod:`impetus.scaler.tick`: what the DFS Lambda runs
  (its decision log and memory: :mod:`impetus.storage.decisions`).
- :mod:`impetus.scaler.sim`: the simulator (not deployed).
- :mod:`impetus.cli.dfs`: ``impetus dfs log|simulate|bound|watch``.
"""
