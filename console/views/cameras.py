from console.pending import pending_page

pending_page("cameras", 6)
