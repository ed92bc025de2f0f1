"""blockident: does contrastive learning block-identify the factors two views share?"""

__version__ = "0.1.0"
