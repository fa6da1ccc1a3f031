#!/usr/bin/env python
from deploy.cli import main

if __name__ == "__main__":
    main()
