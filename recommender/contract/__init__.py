"""The episode data contract: columns and kinds, validation, CSV reading and writing, atomic writes.

The bottom layer: it imports nothing else of the package except the settings.
"""
