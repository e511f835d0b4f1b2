//! Unit tests of the library index against a temporary media root and database.
