"""From a submission to what is sealed and registered: validate, decide, deadline, subject hashes.

Pure: values in, values out; no store, no network, no clock of its own.
"""
