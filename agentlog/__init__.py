"""agentlog: the shell (the `agentlog` CLI, the local stack, the `agentlog dev` supervisor) and the
public surface; `agentlog.edge` is the HTTP edge both APIs share, a floor below them."""
