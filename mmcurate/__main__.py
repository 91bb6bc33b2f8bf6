"""``python -m mmcurate`` is the same as the ``mmcurate`` command."""

from mmcurate.cli import main

main()
