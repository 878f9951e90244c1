"""arrears: compliance-first debt collection."""

__version__ = "0.1.0"
