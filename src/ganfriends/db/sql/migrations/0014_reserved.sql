-- 0014: a placeholder on the roster branch only, so that its 0015 applies (migration numbers
-- have no gaps). The merge replaces this file with the 0014 of the branch that owns the number.
SELECT 1;
