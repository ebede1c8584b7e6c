"""The Excel layer: cell parsing and error text, the function registry, sheets, builders."""
