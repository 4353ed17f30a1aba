"""A real local stack without Docker: Kafka (KRaft) from Maven Central jars, a throw-away
PostgreSQL cluster from the machine's binaries, and the four services as child processes.

Used by `make up`, `make test` and `make bench`. Every child is bound to 127.0.0.1 on a free port
and dies with its parent (PR_SET_PDEATHSIG), so an interrupted run leaves nothing behind.
"""
