import sys

from matting.cli import main

if __name__ == "__main__":  # Airflow's plugin loader may import this file; only `python -m` runs it
    sys.exit(main())
