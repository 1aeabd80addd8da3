"""The operating system under a run: child process groups, the run marker on every child, the run
lock and record, the subreaper. Imports only base/."""
