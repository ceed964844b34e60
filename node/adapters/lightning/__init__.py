"""Lightning backends: one interface (base.py), one module per backend (LNbits, Core Lightning, LND)."""
