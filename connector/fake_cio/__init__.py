"""A local fake of Customer.io's Track API, App API and region endpoint, over real HTTP."""
