"""Administration of the product's definitions: rule packs and strategies edited from the desk."""
