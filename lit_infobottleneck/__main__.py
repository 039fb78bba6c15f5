"""``python -m lit_infobottleneck``: the same as the ``lit-ib`` command."""

from lit_infobottleneck.cli import main

if __name__ == "__main__":
    main()
