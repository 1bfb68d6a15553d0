"""``python -m blockcopy_core.data.synthetic``: export synthetic clips (see :mod:`.export`)."""

from blockcopy_core.data.synthetic.export import main

main()
