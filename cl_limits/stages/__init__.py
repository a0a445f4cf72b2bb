"""The stages of the study: one file per stage, all of one shape (cl_limits/stages/base.py), run as a list
by cl_limits/stages/pipeline.py. The only package that reads and writes the run directory (its layout:
layout.py; every output kind: outputs.py); everything under cl_limits/ outside it is library code."""
