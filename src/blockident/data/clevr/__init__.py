"""CLEVR with masks (DeepMind multi_object_datasets): the public TFRecord file and a stand-in."""
