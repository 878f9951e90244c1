"""The contact record: contact attempts and outcomes, append-only and hash-chained per case."""
