"""The `knet` command line: main.main() assembles the parser and runs one
command; each command group is a module of its own (cluster, apply, get,
exec, workloads, nodes) over the API client."""
