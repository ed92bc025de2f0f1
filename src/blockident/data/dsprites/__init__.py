"""dSprites: the public npz file and a generated stand-in in its layout."""
