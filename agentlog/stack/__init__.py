"""The local development stack: a PostgreSQL cluster from the system's binaries and a single-node
KRaft Kafka broker from Maven-resolved jars, both with data in a project-local folder.

Invariant: the stack only ever stops what it started itself (recorded by process id and data dir).
"""
