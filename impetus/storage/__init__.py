"""The owners of Impetus's DynamoDB tables and S3 payloads; nothing else reads or writes
their items or knows their key formats.

- :mod:`.queue`: ``Queue``, the one facade the API, the nodes and DFS use;
- :mod:`.jobqueue`: the queue and jobs tables (enqueue, claim, settle, collect, recount);
- :mod:`.streams`: the streams table (with :mod:`.streamcounters`, its counter items);
  :mod:`.store`: the key-value store table; :mod:`.nodes`: the nodes table;
  :mod:`.counters`: buffered stream counters; :mod:`.shardrule`: queue shards per rate;
- :mod:`.joblist`: job listings; :mod:`.payloads`: large args and results in S3;
- :mod:`.tables`: table names and schemas; :mod:`.dynamo`: serialisation and batching.
"""
