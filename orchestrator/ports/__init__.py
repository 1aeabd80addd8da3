"""Ports: choosing and leasing them, who holds one, what the kernel says listens, where a service
really answers. Below run/: imports base/, config/ and system/."""
