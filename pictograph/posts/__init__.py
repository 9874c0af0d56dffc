"""Posts and their photos: uploads, processing, and what is stored."""
