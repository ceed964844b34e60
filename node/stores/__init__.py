"""SQL lives here and only here: one module per aggregate, conn first, frozen dataclasses out."""
