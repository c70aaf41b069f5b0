-- models.sqlite3 only: agents before the store split created the artifacts table (0002) here
-- as well, where nothing used it; it lives in functions.sqlite3 alone now.
DROP TABLE IF EXISTS artifacts;
