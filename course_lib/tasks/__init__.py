"""Tasks that tie models, data and the training loop together (one module per task).

- ``classification``: shape classification with the point encoders (``lectures/02_encoders.ipynb``).
"""
