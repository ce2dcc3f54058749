"""Imported first in every worker process (and the fork server): silences library warnings that the command line
silences in the main process, since warning filters do not cross process boundaries."""
import warnings

# avalanche-lib imports qpsolvers, which warns about optional solvers this suite never uses.
warnings.filterwarnings("ignore", message="no QP solver found")
