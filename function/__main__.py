"""`python -m function`: serve the function (settings from the environment, see `function.config`)."""

from function.server import main

if __name__ == "__main__":
    main()
