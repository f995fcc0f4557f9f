from console.pending import pending_page

pending_page("staff", 4)
