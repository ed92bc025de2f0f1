"""Image/caption sets in the RedCaps layout: format, stand-in, data module."""
