"""The file watcher: watchdog observers feeding file changes to the run as events.
Above run/ (it posts run/'s events), below control/ and cli/."""
