"""daybreak.v1: the wire contract, generated from stream.proto by protos/generate.py."""
