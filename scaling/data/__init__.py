"""Event data: schema, the detector simulator, sharded HDF5 datasets, the TPCpp-10M importer, the loader.

Command line: `python -m scaling.data simulate|import-tpcpp|inspect ...`.
"""
