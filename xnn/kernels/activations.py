"""(placeholder: kernels not written yet)"""
OPS = {}
