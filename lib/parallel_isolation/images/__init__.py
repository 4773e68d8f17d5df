"""The Docker backend's images: recipe, input hashing, build, status, command line."""
