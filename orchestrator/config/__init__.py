"""The manifest and what it decides: parsing devports.toml, each service's environment, what it
watches and ignores. Imports only base/."""
