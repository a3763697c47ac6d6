"""What may be recommended at all: the plan space and the contraindication gate.

Imports only the contract.  Nothing can switch the gate off: see :mod:`.gate`.
"""
