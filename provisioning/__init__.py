"""Providers (where the GPU box comes from) and transports (how commands and files reach it). No Prefect.

base.py     the interfaces (Provider, Transport), the Box a run gets, what a rented instance costs (InstanceCost)
local.py    this machine is the box
ssh.py      a box you have; the SSH transport every remote box uses
vast.py     a rented instance on Vast.ai (its offers typed as VastOffer)
polling.py  poll_until: every wait against a deadline
keys.py     the project's own SSH key
"""
