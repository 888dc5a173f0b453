"""The six stages.  Each module defines the stage's Protocol, which backends
implement, and the stage's body (``run``), which the Pipeline calls with the
production's shared StageContext (context.py)."""
