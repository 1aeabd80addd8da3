"""Service output: raw chunks to lines, the printer, the terminal writer, the log files and
`devup logs`. Imports only base/."""
