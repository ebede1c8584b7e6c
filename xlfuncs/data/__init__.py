"""The outside world: API clients, issuer files, market data, bundled samples."""
