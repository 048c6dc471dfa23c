"""cfopt: the ContentFlow optimization course kit's teaching library."""
__version__ = "0.1.0"
