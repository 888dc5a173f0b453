"""The six stages. Each module defines the stage's Protocol; backends implement them."""
