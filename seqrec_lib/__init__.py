"""seqrec_lib: transformer sequential recommendation (SASRec, FAME, MOJITO), data, metrics and training.

Imports flow one way: ``data`` and ``metrics`` know nothing of models; ``models`` know nothing of
training; ``train`` knows the model interface, not the models; ``experiments`` composes them.
"""

__version__ = "0.1.0"
