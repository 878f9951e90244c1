"""Outside collection agencies: the partner list (CN-7), placement of cases, recall, commission."""
