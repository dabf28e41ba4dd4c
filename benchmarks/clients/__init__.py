"""The programs the benchmarks run as child processes, each measured on its own: the simulator server,
the floor client, the msgraph-sdk peer and the tenant-list probe."""
