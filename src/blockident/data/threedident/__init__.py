"""3DIdent: the public cl-ica layout and a generated stand-in in it."""
